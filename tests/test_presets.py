"""Presets: the paper's SerMaskNet and ParaMaskNet, the reference's backbone."""

import ast
import pathlib
import re

import keras
import numpy as np
import pytest

import keras_masknet
from keras_masknet import MaskNet
from keras_masknet import presets
from tests import numpy_paper as paper
from tests.helpers import assign_paper_params
from tests.helpers import relative_error
from tests.helpers import to_numpy

PAPER_BLOCK = {
    "output_size": 400,
    "reduction_factor": 2.0,
    "reduction_factor_base": "inputs",
    "use_hidden_bias": False,
    "output_activation": "relu",
}


def test_paper_presets_have_the_papers_settings():
    ser = presets.preset_config("ser_mask_net")
    para = presets.preset_config("para_mask_net")
    for config in (ser, para):
        assert config["mask_blocks"] == [PAPER_BLOCK] * 3
        assert config["embedding_layer_norm"] is True
        assert config.get("normalize_mask_input", False) is False
    assert ser["use_parallel"] is False and ser["mlp"] is None
    assert para["use_parallel"] is True
    assert para["mlp"] == {
        "layer_sizes": [400, 400, 400],
        "final_layer_activation": True,
    }


def test_reference_production_preset_has_the_yaml_numbers():
    config = presets.preset_config("reference_production")
    assert (
        config["mask_blocks"]
        == [
            {
                "output_size": 1024,
                "aggregation_size": 1024,
                "input_layer_norm": False,
            }
        ]
        * 4
    )
    assert config["mlp"] == {
        "layer_sizes": [2048],
        "final_layer_activation": True,
    }
    assert config["use_parallel"] is True
    assert not config.get("embedding_layer_norm", False)


def test_reference_production_preset_has_about_42_5_million_parameters():
    # REFERENCE.md: the production backbone on a ~2776-wide input. The test
    # above pins the preset's config to the YAML numbers.
    net = presets.reference_production_mask_net()
    net.build((None, 2776))
    assert 42.0e6 < net.count_params() < 43.0e6


@pytest.mark.parametrize(
    "builder,widths,aggregations,out",
    [
        (presets.ser_mask_net, [50, 400, 400], [100, 800, 800], 400),
        (presets.para_mask_net, [50, 50, 50], [100, 100, 100], 400),
    ],
    ids=["SerMaskNet", "ParaMaskNet"],
)
def test_paper_presets_mask_with_r_2_of_the_masked_layer(
    builder, widths, aggregations, out
):
    net = builder()
    y = net(np.ones((2, 5, 10), "float32"))  # 5 fields of size 10
    assert tuple(y.shape) == (2, out)
    assert net.masked_widths() == widths
    assert [b.aggregation_width for b in net.mask_block_layers] == aggregations
    assert [b.mask_input_dim for b in net.mask_block_layers] == [50] * 3
    assert len(net.embedding_norms) == 5


@pytest.mark.parametrize("name", ["ser_mask_net", "para_mask_net"])
def test_paper_presets_match_the_papers_equations(name):
    net = getattr(presets, name)()
    dims = [4, 2, 6]  # fields of different widths
    rng = np.random.default_rng(0)
    fields = [rng.normal(size=(8, d)).astype("float32") for d in dims]
    net(fields)
    config = presets.preset_config(name)
    params = paper.init_params(config, dims)
    assign_paper_params(net, params)
    got = net(fields, return_masks=True)
    want = paper.mask_net(params, config, fields)
    # 400-wide layers, three deep: float32 rounding grows a little.
    assert relative_error(to_numpy(got["output"]), want["output"]) <= 2e-5
    for mask, expected in zip(got["masks"], want["masks"]):
        assert relative_error(to_numpy(mask), expected) <= 2e-5


def test_overrides_replace_the_presets_arguments():
    net = presets.para_mask_net(
        name="para", mlp={"layer_sizes": [8]}, normalize_mask_input=True
    )
    assert net.name == "para"
    assert net.mlp_layer.layer_sizes == [8]
    assert net.normalize_mask_input is True
    assert len(net.mask_block_layers) == 3
    with pytest.raises(
        ValueError, match="Unrecognized keyword arguments.*blocks"
    ):
        presets.ser_mask_net(blocks=2)


def test_preset_config_is_a_fresh_copy():
    config = presets.preset_config("ser_mask_net")
    config["mask_blocks"][0]["output_size"] = 7
    config["mask_blocks"].append(dict(PAPER_BLOCK))
    again = presets.preset_config("ser_mask_net")
    assert again["mask_blocks"] == [PAPER_BLOCK] * 3
    net = presets.ser_mask_net()
    assert [b.output_size for b in net.mask_block_layers] == [400] * 3


@pytest.mark.parametrize("name", ["SerMaskNet", None, "paper"])
def test_unknown_preset_name_is_refused(name):
    with pytest.raises(ValueError, match=r"one of \['ser_mask_net'.*name="):
        presets.preset_config(name)


def test_a_preset_round_trips_through_a_keras_file(tmp_path):
    inputs = keras.Input((3, 4))
    net = presets.ser_mask_net(
        mask_blocks=[dict(PAPER_BLOCK, output_size=6)] * 3
    )
    model = keras.Model(inputs, keras.layers.Dense(1)(net(inputs)))
    x = np.random.default_rng(1).normal(size=(5, 3, 4)).astype("float32")
    model.save(tmp_path / "ser.keras")
    loaded = keras.saving.load_model(tmp_path / "ser.keras", safe_mode=True)
    np.testing.assert_array_equal(
        loaded.predict(x, verbose=0), model.predict(x, verbose=0)
    )
    assert isinstance(loaded.layers[1], MaskNet)
    assert loaded.layers[1].get_config() == net.get_config()


def test_presets_live_in_their_own_module():
    # The package's top level holds the layers and the submodules only.
    assert keras_masknet.presets is presets
    assert "presets" in keras_masknet.__all__
    assert presets.PRESET_NAMES == (
        "ser_mask_net",
        "para_mask_net",
        "reference_production",
    )
    for name in (
        "ser_mask_net",
        "para_mask_net",
        "reference_production_mask_net",
        "preset_config",
    ):
        assert callable(getattr(presets, name))
        assert name not in keras_masknet.__all__


def test_layers_know_nothing_of_presets():
    layers = pathlib.Path(keras_masknet.__file__).parent / "layers"
    for path in layers.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                names = [node.module or ""] + [a.name for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            else:
                continue
            assert not any("presets" in n for n in names), path.name


@pytest.mark.parametrize(
    "func",
    [
        presets.preset_config,
        presets.ser_mask_net,
        presets.para_mask_net,
        presets.reference_production_mask_net,
    ],
    ids=lambda f: f.__name__,
)
def test_docstring_examples_run(func):
    examples = re.findall(r"```python\n(.*?)```", func.__doc__, re.S)
    assert len(examples) == 1
    code = "\n".join(line[4:] for line in examples[0].splitlines())
    exec(compile(code, f"<{func.__name__} example>", "exec"), {})
