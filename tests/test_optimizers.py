"""hw2.optimizers against torch.optim, step by step, in float64."""
import math

import pytest
import torch

from hw2.optimizers import Adam, MomentumSGD, Optimizer, RMSProp, VanillaSGD

STEPS = 1000
SHAPES = [(5, 3), (3,), (2, 2, 2)]

# Each case: our optimizer, its keyword arguments, the torch.optim class and
# the keyword arguments that make it the same algorithm (see the docstrings).
CASES = {
    "sgd": (VanillaSGD, dict(learn_rate=0.05, reg=1e-2),
            torch.optim.SGD, dict(lr=0.05, weight_decay=1e-2)),
    "sgd-noreg": (VanillaSGD, dict(learn_rate=0.05, reg=0),
                  torch.optim.SGD, dict(lr=0.05)),
    "momentum": (MomentumSGD, dict(learn_rate=0.01, reg=1e-2, momentum=0.9),
                 torch.optim.SGD, dict(lr=0.01, momentum=0.9, weight_decay=1e-2)),
    "momentum-0.5": (MomentumSGD, dict(learn_rate=0.03, reg=0, momentum=0.5),
                     torch.optim.SGD, dict(lr=0.03, momentum=0.5)),
    # eps = 0 in both: ours puts eps inside the square root, torch outside.
    "rmsprop": (RMSProp, dict(learn_rate=1e-2, reg=1e-2, decay=0.9, eps=0),
                torch.optim.RMSprop, dict(lr=1e-2, alpha=0.9, eps=0, weight_decay=1e-2)),
    "rmsprop-0.99": (RMSProp, dict(learn_rate=3e-3, reg=0, decay=0.99, eps=0),
                     torch.optim.RMSprop, dict(lr=3e-3, alpha=0.99, eps=0)),
    "adam": (Adam, dict(learn_rate=1e-2, reg=1e-2, betas=(0.9, 0.999), eps=1e-8),
             torch.optim.Adam, dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=1e-2)),
    "adam-betas": (Adam, dict(learn_rate=3e-3, betas=(0.5, 0.9), eps=1e-6),
                   torch.optim.Adam, dict(lr=3e-3, betas=(0.5, 0.9), eps=1e-6)),
}


def make_problem(seed=0):
    """Initial parameters and a noisy separable quadratic: ∇L(θ) = a ⊙ θ − b + noise_k."""
    gen = torch.Generator().manual_seed(seed)
    kw = dict(dtype=torch.float64, generator=gen)
    theta0 = [torch.randn(s, **kw) for s in SHAPES]
    curv = [0.1 + 1.9 * torch.rand(s, **kw) for s in SHAPES]
    target = [torch.randn(s, **kw) for s in SHAPES]
    noise = [[0.1 * torch.randn(s, **kw) for s in SHAPES] for _ in range(STEPS)]

    def grad(k, i, theta):
        return curv[i] * theta - target[i] + noise[k][i]

    return theta0, grad


def run_ours(cls, kwargs, steps=STEPS, seed=0):
    theta0, grad = make_problem(seed)
    pairs = [(t.clone(), torch.zeros_like(t)) for t in theta0]
    opt = cls(pairs, **kwargs)
    for k in range(steps):
        opt.zero_grad()
        for i, (p, dp) in enumerate(pairs):
            dp += grad(k, i, p)  # as a layer's backward would: accumulate in place
        opt.step()
    return [p for p, _ in pairs], opt


def run_torch(cls, kwargs, steps=STEPS, seed=0):
    theta0, grad = make_problem(seed)
    params = [torch.nn.Parameter(t.clone()) for t in theta0]
    opt = cls(params, **kwargs)
    for k in range(steps):
        opt.zero_grad()
        for i, p in enumerate(params):
            p.grad = grad(k, i, p.detach())
        opt.step()
    return [p.detach() for p in params]


@pytest.mark.parametrize("case", CASES)
def test_matches_torch_optim(case):
    ours_cls, ours_kw, torch_cls, torch_kw = CASES[case]
    ours, _ = run_ours(ours_cls, ours_kw)
    ref = run_torch(torch_cls, torch_kw)
    theta0, _ = make_problem()
    for p, q, p0 in zip(ours, ref, theta0):
        assert (p - p0).abs().max() > 0.1  # the parameters really moved
        assert (p - q).abs().max() < 1e-10


def test_rmsprop_eps_inside_square_root():
    """With eps > 0 the rule is θ ← θ − η g/√(r + ε): compare with that formula written out."""
    eta, lam, gamma, eps = 1e-2, 1e-3, 0.9, 1e-2  # eps large enough to matter
    ours, _ = run_ours(RMSProp, dict(learn_rate=eta, reg=lam, decay=gamma, eps=eps), steps=200)
    theta0, grad = make_problem()
    theta = [t.clone() for t in theta0]
    r = [torch.zeros_like(t) for t in theta0]
    for k in range(200):
        for i in range(len(theta)):
            g = grad(k, i, theta[i]) + lam * theta[i]
            r[i] = gamma * r[i] + (1 - gamma) * g**2
            theta[i] = theta[i] - eta * g / torch.sqrt(r[i] + eps)
    for p, q in zip(ours, theta):
        assert (p - q).abs().max() < 1e-12
    # ... and that it is not torch's eps-outside rule with the same eps.
    torch_ref = run_torch(torch.optim.RMSprop, dict(lr=eta, alpha=gamma, eps=eps, weight_decay=lam),
                          steps=200)
    assert max((p - q).abs().max() for p, q in zip(ours, torch_ref)) > 1e-4


def test_momentum_velocity_is_minus_lr_times_torch_buffer():
    ours, opt = run_ours(MomentumSGD, dict(learn_rate=0.01, reg=0, momentum=0.9), steps=50)
    theta0, grad = make_problem()
    params = [torch.nn.Parameter(t.clone()) for t in theta0]
    topt = torch.optim.SGD(params, lr=0.01, momentum=0.9)
    for k in range(50):
        for i, p in enumerate(params):
            p.grad = grad(k, i, p.detach())
        topt.step()
    for i, p in enumerate(params):
        v = opt.state[i]["velocity"]
        assert torch.allclose(v, -0.01 * topt.state[p]["momentum_buffer"], rtol=0, atol=1e-13)


@pytest.mark.parametrize("case", ["sgd", "momentum", "rmsprop", "adam"])
def test_state_dict_resume_is_exact(case):
    cls, kw, _, _ = CASES[case]
    full, _ = run_ours(cls, kw, steps=40)

    theta0, grad = make_problem()
    pairs = [(t.clone(), torch.zeros_like(t)) for t in theta0]
    opt = cls(pairs, **kw)

    def steps(opt, pairs, ks):
        for k in ks:
            opt.zero_grad()
            for i, (p, dp) in enumerate(pairs):
                dp += grad(k, i, p)
            opt.step()

    steps(opt, pairs, range(20))
    saved = opt.state_dict()
    saved_params = [p.clone() for p, _ in pairs]
    # Keep training the old optimizer: the saved state must not be aliased to it.
    steps(opt, pairs, range(20, 25))
    pairs2 = [(p.clone(), torch.zeros_like(p)) for p in saved_params]
    defaults = {k: v for k, v in kw.items() if k != "learn_rate"}
    opt2 = cls(pairs2, learn_rate=123.0, **defaults)  # hyperparameters come from the state dict
    opt2.load_state_dict(saved)
    assert opt2.learn_rate == kw["learn_rate"]
    steps(opt2, pairs2, range(20, 40))
    for (p, _), q in zip(pairs2, full):
        assert torch.equal(p, q)


def test_state_created_on_first_step():
    pairs = [(torch.ones(3), torch.ones(3))]
    opt = Adam(pairs)
    assert opt.state == {}
    opt.step()
    assert opt.state[0]["step"] == 1 and opt.state[0]["exp_avg"].shape == (3,)


def test_step_updates_in_place_and_leaves_grad_alone():
    p, dp = torch.tensor([1.0, -2.0]), torch.tensor([0.5, 0.5])
    p_storage = p.data_ptr()
    VanillaSGD([(p, dp)], learn_rate=0.1, reg=0.5).step()
    # θ ← θ − η(∇L + λθ) = [1 − 0.1(0.5 + 0.5), −2 − 0.1(0.5 − 1)]
    assert torch.allclose(p, torch.tensor([0.9, -1.95]))
    assert p.data_ptr() == p_storage
    assert torch.equal(dp, torch.tensor([0.5, 0.5]))


def test_zero_grad_zeroes_in_place():
    dp = torch.ones(4)
    VanillaSGD([(torch.zeros(4), dp)]).zero_grad()
    assert torch.equal(dp, torch.zeros(4))


def test_step_works_on_tensors_that_require_grad():
    w = torch.ones(2, requires_grad=True)
    VanillaSGD([(w, torch.ones(2))], learn_rate=0.5, reg=0).step()
    assert torch.equal(w.detach(), torch.full((2,), 0.5))


def test_rmsprop_first_step_has_size_eta_over_sqrt_one_minus_decay():
    # r₁ = (1−γ)g², so |Δθ| = η|g|/√((1−γ)g²) = η/√(1−γ) whatever g is (eps = 0).
    g = torch.tensor([1e-3, 1.0, -50.0], dtype=torch.float64)
    p = torch.zeros(3, dtype=torch.float64)
    RMSProp([(p, g)], learn_rate=0.1, reg=0, decay=0.9, eps=0).step()
    assert torch.allclose(p.abs(), torch.full((3,), 0.1 / math.sqrt(0.1), dtype=torch.float64))


@pytest.mark.parametrize("params, error, match", [
    ([], ValueError, "empty"),
    (torch.zeros(3), TypeError, "pairs"),
    (5, TypeError, "pairs"),
    ([torch.zeros(3)], TypeError, r"params\[0\]"),
    ([(torch.zeros(3), torch.zeros(3)), (torch.zeros(2), None)], TypeError, r"params\[1\]"),
    ([(torch.zeros(3), torch.zeros(2))], ValueError, r"shape \(3,\).*\(2,\)"),
])
def test_bad_params(params, error, match):
    with pytest.raises(error, match=match):
        VanillaSGD(params)


def test_params_may_be_a_generator():
    opt = VanillaSGD(((torch.zeros(2), torch.zeros(2)) for _ in range(3)))
    assert len(opt.params) == 3


@pytest.mark.parametrize("cls, kwargs, match", [
    (VanillaSGD, dict(learn_rate=-0.1), "learn_rate.*-0.1"),
    (VanillaSGD, dict(reg=-1), "reg.*-1"),
    (VanillaSGD, dict(learn_rate=float("nan")), "learn_rate"),
    (MomentumSGD, dict(momentum=1.0), "momentum.*1.0"),
    (MomentumSGD, dict(momentum=-0.1), "momentum"),
    (RMSProp, dict(decay=1.5), "decay.*1.5"),
    (RMSProp, dict(eps=-1e-8), "eps"),
    (Adam, dict(betas=(0.9, 1.0)), r"betas\[1\].*1.0"),
    (Adam, dict(betas=(-0.1, 0.9)), r"betas\[0\]"),
    (Adam, dict(betas=0.9), "betas must be a pair"),
    (Adam, dict(eps=-1.0), "eps"),
])
def test_bad_hyperparameters(cls, kwargs, match):
    with pytest.raises(ValueError, match=match):
        cls([(torch.zeros(2), torch.zeros(2))], **kwargs)


@pytest.mark.parametrize("value", ["0.1", True, None])
def test_hyperparameter_must_be_a_number(value):
    with pytest.raises(TypeError, match="learn_rate"):
        VanillaSGD([(torch.zeros(2), torch.zeros(2))], learn_rate=value)


def test_optimizer_is_abstract_and_repr():
    with pytest.raises(TypeError):
        Optimizer([(torch.zeros(2), torch.zeros(2))])
    text = repr(MomentumSGD([(torch.zeros(2), torch.zeros(2))], learn_rate=0.1))
    assert text.startswith("MomentumSGD(1 params") and "momentum=0.9" in text


def test_load_state_dict_rejects_mismatch():
    opt = MomentumSGD([(torch.zeros(2), torch.ones(2))])
    opt.step()
    other = MomentumSGD([(torch.zeros(3), torch.ones(3))])
    with pytest.raises(ValueError, match="shape"):
        other.load_state_dict(opt.state_dict())
    with pytest.raises(ValueError, match="does not have"):
        VanillaSGD([(torch.zeros(2), torch.ones(2))]).load_state_dict(opt.state_dict())
    bad = opt.state_dict()
    bad["hyperparameters"]["momentum"] = 2.0
    with pytest.raises(ValueError, match="momentum"):
        opt.load_state_dict(bad)


def test_subclass_may_override_step_like_the_original_assignment():
    class HalfStep(Optimizer):
        def step(self):
            for p, dp in self.params:
                p -= 0.5 * dp

    p = torch.ones(2)
    HalfStep([(p, torch.ones(2))]).step()
    assert torch.equal(p, torch.full((2,), 0.5))

    class Nothing(Optimizer):
        pass

    with pytest.raises(TypeError, match="Nothing is abstract"):
        Nothing([(torch.zeros(2), torch.zeros(2))])


def test_integer_parameters_are_refused_when_the_optimizer_is_made():
    p, g = torch.zeros(3, dtype=torch.long), torch.zeros(3, dtype=torch.long)
    for cls in (VanillaSGD, MomentumSGD, RMSProp, Adam):
        with pytest.raises(TypeError, match=r"params\[0\]: parameters and gradients must be "
                                            r"floating-point tensors .* torch.int64"):
            cls([(p, g)], learn_rate=0.1)


@pytest.mark.parametrize("bad", [{"x": 1}, {"hyperparameters": {}}, [1, 2], None])
def test_load_state_dict_names_what_it_needs(bad):
    opt = VanillaSGD([(torch.zeros(2), torch.zeros(2))], learn_rate=0.1)
    with pytest.raises(ValueError, match="VanillaSGD.load_state_dict needs the dict of "
                                         "state_dict\\(\\), with 'hyperparameters' and 'state'"):
        opt.load_state_dict(bad)

