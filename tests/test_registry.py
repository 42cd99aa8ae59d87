import pytest
import torch

from kanbench import registry
from kanbench.registry import UnknownNameError, create_block, create_layer, get_variant, list_variants

BUILTIN = {"af_kan", "bspline_kan", "glu", "grkan", "mlp", "relu_kan", "spark_ffn"}  # kanbench's own, at least


def test_every_registered_variant_has_a_reference_impl_usable_on_a_cpu():
    assert BUILTIN <= set(list_variants())
    for name in list_variants():
        assert registry.REFERENCE in get_variant(name).usable_impls("cpu")


def test_exactly_one_baseline_and_it_is_the_mlp():
    assert registry.baseline_variant() == "mlp"


def test_a_layer_variant_is_one_registration_with_a_derived_block():
    from kanbench.costs import linear_cost
    from kanbench.variants.two_layer import register_layer_variant

    class Scaled(torch.nn.Linear):
        def __init__(self, d_in, d_out, scale=2.0):
            super().__init__(d_in, d_out)
            self.scale = scale

        def forward(self, x):
            return super().forward(x) * self.scale

    block = register_layer_variant("test_scaled", layer=Scaled, layer_cost=lambda a, b, scale=2.0: linear_cost(a, b),
                                   description="test", paper="test", defaults={"scale": 2.0},
                                   validate=lambda a, b, **hp: None)
    try:
        made = create_block("test_scaled", 8, 16, scale=3.0)
        assert type(made) is block and made.fc1.scale == 3.0 and (made.fc1.in_features, made.fc2.out_features) == (8, 8)
        assert registry.block_cost("test_scaled", 8, 16) == linear_cost(8, 16) + linear_cost(16, 8)
        x = torch.randn(4, 8)
        assert torch.equal(made(x), made.fc2(made.fc1(x)))
    finally:
        registry.unregister("test_scaled")


def test_list_variants_filters_by_glob_patterns():
    assert list_variants("*kan") == ["af_kan", "bspline_kan", "cheby_kan", "fourier_kan", "grkan", "relu_kan",
                                     "wav_kan"]
    assert list_variants(["mlp", "g*"]) == ["glu", "grkan", "mlp"]
    assert list_variants("nothing*") == []


def test_unknown_variant_lists_known_names_and_the_nearest():
    with pytest.raises(UnknownNameError) as err:
        create_block("grkn", 16, 64)
    message = str(err.value)
    assert "Did you mean 'grkan'?" in message
    for name in list_variants():
        assert name in message


def test_unknown_impl_is_an_error_not_a_fallback():
    with pytest.raises(UnknownNameError) as err:
        create_block("mlp", 16, 64, impl="compild")
    assert str(err.value).startswith("unknown impl 'compild'. Did you mean 'compiled'? Known impls of 'mlp': ")
    assert "compiled, reference" in str(err.value)


def test_unknown_hyperparameter_names_the_known_ones():
    with pytest.raises(ValueError, match="unknown hyperparameter.*grid_sise.*known: .*grid_size"):
        create_block("bspline_kan", 8, 16, grid_sise=4)


@pytest.mark.parametrize(
    ("name", "d_model", "d_hidden", "hparams", "pattern"),
    [
        ("grkan", 100, 64, {}, r"width 100 is not divisible by groups=8"),
        ("grkan", 64, 100, {}, r"width 100 is not divisible by groups=8"),
        ("grkan", 64, 64, {"init": "relu"}, r"init must be one of identity, swish, gelu, got 'relu'"),
        ("spark_ffn", 16, 64, {"k_fraction": 1.5}, r"k_fraction must be in \(0, 1\).*1.5"),
        ("spark_ffn", 16, 4, {"k_fraction": 0.08}, r"1 <= k < d_ff=4"),
        ("spark_ffn", 16, 64, {"r": 16}, r"1 <= r < d_model=16, got 16"),
        ("bspline_kan", 8, 16, {"grid_size": 0}, r"grid_size must be an integer >= 1, got 0"),
        ("relu_kan", 8, 16, {"grid_size": 0}, r"grid_size must be an integer >= 1, got 0"),
        ("af_kan", 8, 16, {"func": "quad9"}, r"func must be one of .*quad1.*got 'quad9'"),
        ("mlp", 0, 16, {}, r"d_model must be a positive integer, got 0"),
    ],
)
def test_bad_hyperparameters_name_the_constraint_and_value(name, d_model, d_hidden, hparams, pattern):
    with pytest.raises(ValueError, match=pattern):
        create_block(name, d_model, d_hidden, **hparams)


def test_block_only_variant_has_no_layer_form():
    with pytest.raises(ValueError, match="only a block form"):
        create_layer("spark_ffn", 8, 8)


def test_user_variant_registers_with_the_same_decorator():
    from kanbench.costs import Cost

    @registry.register("user_identity", description="test", paper="none", block_cost=lambda d, h: Cost(0, 0, 0),
                       defaults={}, validate=lambda d, h: None)
    class Identity(torch.nn.Module):
        def __init__(self, d_model, d_hidden):
            super().__init__()

        def forward(self, x):
            return x

    try:
        assert "user_identity" in list_variants()
        x = torch.randn(2, 4)
        assert torch.equal(create_block("user_identity", 4, 8)(x), x)
    finally:
        registry.unregister("user_identity")
    assert "user_identity" not in list_variants()


def test_impl_that_cannot_run_here_says_why():
    impl = registry.Impl("gpu_only", block=None, devices=("cuda",))
    assert impl.why_not("cpu") == "impl 'gpu_only' runs on cuda, not cpu"
    impl = registry.Impl("fp32_only", block=None, dtypes=(torch.float32,))
    assert "supports dtypes float32, not bfloat16" in impl.why_not("cpu", torch.bfloat16)


def module_classes(module: torch.nn.Module) -> set[type]:
    return {type(m) for m in module.modules()}


@pytest.mark.parametrize("name", sorted(BUILTIN | {"cheby_kan", "fourier_kan", "wav_kan"}))
def test_every_kernel_impl_builds_modules_other_than_the_references(name):
    """A kernel impl whose constructor replaced nothing would be the reference under another name: it would pass
    the gate against itself and be timed as the kernel."""
    from kanbench import kernels  # noqa: F401 - registers the kernel impls
    from kanbench.compiled import COMPILED

    spec = get_variant(name)
    # kanbench's own impls other than the reference and torch.compile of it (peers measure a package's layer)
    kernel_impls = [impl for impl in spec.impls.values()
                    if impl.name not in (registry.REFERENCE, COMPILED) and impl.package is None]
    for impl in kernel_impls:
        for form, args in (("block", (16, 32)), ("layer", (16, 24))):
            if not impl.has_form(form):
                continue
            built = getattr(impl, form)(*args, **spec.hparams({}))
            reference = getattr(spec.impl(registry.REFERENCE), form)(*args, **spec.hparams({}))
            assert module_classes(built) != module_classes(reference), f"{name}/{impl.name} {form}"
    assert kernel_impls or name in {"glu", "mlp"}


def test_a_swap_that_finds_no_module_to_replace_is_an_error():
    from kanbench.kernels.launch import swapped

    class Fused(torch.nn.Linear):
        pass

    make = swapped(lambda d_in, d_out: torch.nn.Sequential(torch.nn.Linear(d_in, d_out)), torch.nn.Conv1d, Fused)
    with pytest.raises(TypeError, match="built no Conv1d to replace"):
        make(4, 4)
    assert type(swapped(torch.nn.Linear, torch.nn.Linear, Fused)(4, 4)) is Fused
