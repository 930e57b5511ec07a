"""The SavedModel export treats NUL characters as the CLI does, and says what is wrong with
an input that is not a 1-D batch of strings."""

from __future__ import annotations

import pytest
import tensorflow as tf

from seq2seq.exporting.exporters import INPUT_NAME, export_saved_model
from seq2seq.inference.translator import Translator

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def signature(tiny_run, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export-inputs") / "greedy"
    export_saved_model(tiny_run, folder, method="greedy")
    return tf.saved_model.load(str(folder)).signatures["serving_default"]


def test_nul_characters_are_dropped_as_the_cli_drops_them(signature, tiny_run):
    outputs = signature(**{INPUT_NAME: tf.constant(["\x00\x00\x00", "One\x00 two .", ""])})
    texts = [t.decode() for t in outputs["translations"].numpy()]
    expected = Translator.from_run(tiny_run, jit_compile=False).translate_one("One two .")
    assert texts == ["", expected.text, ""]  # a line of NULs alone is empty, as in the CLI
    assert outputs["lengths"].numpy().tolist()[0] == 0


@pytest.mark.parametrize("batch", [[["One ."]], [["One .", "Two ."], ["a", "b"]], "One ."])
def test_a_batch_that_is_not_1d_is_refused_with_its_shape(signature, batch):
    with pytest.raises(tf.errors.InvalidArgumentError, match="must be a 1-D batch of strings"):
        signature(**{INPUT_NAME: tf.constant(batch)})
