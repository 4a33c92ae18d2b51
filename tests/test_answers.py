"""hw2.answers: the course notebooks' answers (one source with the book) and hyperparameters."""
from __future__ import annotations

import json
import re

import pytest
import torch
from torch.utils.data import DataLoader, TensorDataset

import hw2.answers as answers
from hw2 import layers, optimizers
from hw2.training import LayerTrainer


# --------------------------------------------------------------------------
# The answers are the book's sections
# --------------------------------------------------------------------------

@pytest.mark.parametrize("name", list(answers.ANSWERS))
def test_every_answer_is_its_chapter_section_as_markdown(name):
    text = getattr(answers, name)
    chapter, label = answers.ANSWERS[name]
    source = (answers.repo_root() / chapter).read_text()
    heading = source.splitlines()[source.splitlines().index(f"({label})=") + 1]
    assert text.splitlines()[0] == heading, f"{name} does not start at its section's heading"
    assert text == answers.answer(name)
    # Plain Markdown: no MyST role, directive, label or code cell is left.
    leftover = re.findall(r"\{[\w:-]+\}`|```\{|^\([\w:.-]+\)=$", text, re.M)
    assert not leftover, f"{name} keeps MyST markup: {leftover}"
    assert len(text.split()) > 30, f"{name} is too short to be an answer"
    assert "## Exercises" not in text, f"{name} runs into the chapter's exercises"
    assert name in dir(answers)


def test_an_unknown_answer_is_an_attribute_error():
    with pytest.raises(AttributeError, match="has no attribute 'part9_q1'"):
        answers.part9_q1  # noqa: B018
    with pytest.raises(KeyError, match="no answer 'x'; answers: part1_q1"):
        answers.answer("x")


def test_glued_numbers_come_from_the_built_book_and_markup_becomes_text(tmp_path, monkeypatch):
    """A fake repository: a chapter section with MyST markup and its executed notebook."""
    book = tmp_path / "book" / "part9"
    book.mkdir(parents=True)
    (book / "q.md").write_text("""# Title

(sec-q)=
## The question

The loss fell to {glue:text}`loss:.2f` in {glue:text}`other.md::epochs:d` epochs
({cite}`he2016deep`; see {ref}`the training chapter <ch-training>` and {numref}`fig-x`).

```{code-cell} ipython3
glue("loss", 0.123456)
```

```{glue:figure} fig_x
:name: fig-x

The curves of the run.
```

(sec-next)=
## Next question

Not part of the answer.
""")
    (tmp_path / "book" / "references.bib").write_text(
        "@inproceedings{he2016deep,\n  author = {He, Kaiming and Zhang, Xiangyu and Ren, Shaoqing},\n"
        "  year = {2016},\n}\n")
    built = tmp_path / "_build" / "jupyter_execute" / "book" / "part9"
    built.mkdir(parents=True)
    glue_out = {"output_type": "display_data", "metadata": {"scrapbook": {"name": "loss"}},
                "data": {"application/papermill.record/text/plain": "0.123456"}}
    (built / "q.ipynb").write_text(json.dumps({"cells": [{"outputs": [glue_out]}]}))
    monkeypatch.setattr(answers, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(answers, "book_path", lambda relative: tmp_path / relative)
    monkeypatch.setitem(answers.ANSWERS, "part9_q1", ("book/part9/q.md", "sec-q"))
    for cache in (answers._answer_text, answers._built_glue, answers._bibliography):
        cache.cache_clear()
    try:
        text = answers.part9_q1
    finally:
        for cache in (answers._answer_text, answers._built_glue, answers._bibliography):
            cache.cache_clear()
    assert text.splitlines()[0] == "## The question"
    assert "The loss fell to 0.12 in [epochs: computed when the book is built] epochs" in text
    assert "([He et al., 2016]; see the training chapter and “fig-x” in the book)" in text
    assert "*Figure (in the book): The curves of the run.*" in text
    assert "glue(" not in text and "Not part of the answer" not in text


def test_a_missing_label_or_chapter_is_named(tmp_path, monkeypatch):
    (tmp_path / "book").mkdir()
    (tmp_path / "book" / "c.md").write_text("# Title\n\nNo labels.\n")
    monkeypatch.setattr(answers, "repo_root", lambda: tmp_path)
    monkeypatch.setattr(answers, "book_path", lambda relative: tmp_path / relative)
    monkeypatch.setitem(answers.ANSWERS, "part9_q1", ("book/c.md", "sec-q"))
    monkeypatch.setitem(answers.ANSWERS, "part9_q2", ("book/gone.md", "sec-q"))
    answers._answer_text.cache_clear()
    try:
        with pytest.raises(LookupError, match=r"book/c.md has no section labelled \(sec-q\)="):
            answers.part9_q1  # noqa: B018
        with pytest.raises(FileNotFoundError, match="book/gone.md cannot be read"):
            answers.part9_q2  # noqa: B018
    finally:
        answers._answer_text.cache_clear()


def test_without_a_built_book_every_answer_shows_its_numbers(monkeypatch):
    """A plain checkout (no _build/) or an installed wheel: the committed
    hw2/answer_values.json fills in every number an answer quotes."""
    assert answers.VALUES_FILE.is_file(), (
        f"{answers.VALUES_FILE.name} is missing: build the book and commit the file it writes")
    monkeypatch.setattr(answers, "_built_glue", lambda notebook: {})
    answers._answer_text.cache_clear()
    try:
        placeholders = {name: re.findall(r"\[(\w+): computed when the book is built\]",
                                         answers.answer(name))
                        for name in answers.ANSWERS}
    finally:
        answers._answer_text.cache_clear()
    missing = {name: found for name, found in placeholders.items() if found}
    assert not missing, f"answers with placeholders outside a built book: {missing}"


def test_the_recorded_values_name_every_value_the_answers_quote():
    recorded = json.loads(answers.VALUES_FILE.read_text(encoding="utf-8"))
    quoted = {(nb, name) for chapter, label in answers.ANSWERS.values()
              for nb, name in answers._glue_references(chapter, label)}
    have = {(nb, name) for nb, values in recorded.items() for name in values}
    assert quoted <= have, f"not recorded: {sorted(quoted - have)[:5]}"
    assert have <= quoted, f"recorded but quoted by no answer: {sorted(have - quoted)[:5]}"


# --------------------------------------------------------------------------
# The hyperparameters make the course notebook's own runs succeed
# --------------------------------------------------------------------------

def test_hyperparameter_functions_have_the_course_keys():
    assert set(answers.part2_overfit_hp()) == {"wstd", "lr", "reg"}
    assert set(answers.part2_optim_hp()) == {"wstd", "lr_vanilla", "lr_momentum", "lr_rmsprop", "reg"}
    assert set(answers.part2_dropout_hp()) == {"wstd", "lr"}
    for hp in (answers.part2_overfit_hp(), answers.part2_optim_hp(), answers.part2_dropout_hp()):
        assert all(isinstance(v, float) and v >= 0 for v in hp.values())


@pytest.fixture(scope="module")
def cifar10():
    from hw2.data import DataError, load_cifar10

    try:
        return load_cifar10()
    except DataError as e:
        pytest.skip(f"the overfit check needs CIFAR-10 (set HW2_CIFAR10): {e}")


def course_overfit_best_accuracy(dataset, hp) -> float:
    """The course notebook's cell, as written: batch 10 without shuffling, an MLP
    3072-128-128-128-10, plain SGD, 20 calls of train_epoch(max_batches=2)."""
    dl_train = DataLoader(dataset, 10, shuffle=False)
    torch.manual_seed(42)
    model = layers.MLP(3 * 32 * 32, num_classes=10, hidden_features=[128] * 3, wstd=hp["wstd"])
    loss_fn = layers.CrossEntropyLoss()
    optimizer = optimizers.VanillaSGD(model.params(), learn_rate=hp["lr"], reg=hp["reg"])
    trainer = LayerTrainer(model, loss_fn, optimizer)
    best_acc = 0
    for _ in range(20):
        res = trainer.train_epoch(dl_train, max_batches=2, verbose=False)
        best_acc = res.accuracy if res.accuracy > best_acc else best_acc
    return best_acc


@pytest.mark.parametrize("order", ["as hw2.data yields them", "a fixed shuffled order"])
@pytest.mark.parametrize("scaling", ["ToTensor, [0, 1]", "hw2.data, normalised"])
def test_overfit_hp_pass_the_course_check_on_the_jpeg_copy(cifar10, order, scaling):
    from hw2.data import CIFAR10Dataset

    if order == "as hw2.data yields them":
        rows = torch.arange(20)
    else:
        rows = torch.randperm(len(cifar10.train_y), generator=torch.Generator().manual_seed(0))[:20]
    x, y = cifar10.train_x[rows], cifar10.train_y[rows]
    dataset = TensorDataset(x.float() / 255, y) if scaling.startswith("ToTensor") else CIFAR10Dataset(x, y)
    best = course_overfit_best_accuracy(dataset, answers.part2_overfit_hp())
    print(f"overfit check, {order}, {scaling}: best accuracy {best:.1f}%")
    assert best >= 98, f"best accuracy {best}% < 98% ({order}, {scaling})"
