"""ONNX builders for the SR model family and a U-Net, with seeded random weights.

Used by the tests (every model compiled once and checked against onnxruntime at several shapes),
by bench/ and by the demo. Inputs are NCHW float32 with symbolic dims n, h, w; weights follow the
layouts PyTorch exports (PixelShuffle -> DepthToSpace CRD, weight-norm folded into plain weights).
"""
from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class Net:
    """A small graph builder: each method adds nodes and returns the output's name."""

    def __init__(self, seed: int = 0, channels: int = 3):
        self.rng = np.random.default_rng(seed)
        self.nodes: list = []
        self.inits: list = []
        self.count = 0

    def _name(self, base: str) -> str:
        self.count += 1
        return f"{base}_{self.count}"

    def const(self, array, base="c") -> str:
        name = self._name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op, inputs, n_out=1, **attrs):
        outs = [self._name(op.lower()) for _ in range(n_out)]
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=self._name(op), **attrs))
        return outs[0] if n_out == 1 else outs

    def conv(self, x, cin, cout, k, stride=1, group=1, bias=True, pad=None, dilation=1, scale=None):
        fan_in = cin // group * k * k
        w = self.rng.standard_normal((cout, cin // group, k, k)).astype(np.float32)
        w *= (scale if scale is not None else np.sqrt(2.0 / fan_in))
        p = (k // 2) * dilation if pad is None else pad
        ins = [x, self.const(w, "w")]
        if bias:
            ins.append(self.const(self.rng.standard_normal(cout).astype(np.float32) * 0.05, "b"))
        return self.node("Conv", ins, kernel_shape=[k, k], strides=[stride, stride], pads=[p] * 4,
                         group=group, dilations=[dilation, dilation])

    def conv_transpose(self, x, cin, cout, k, stride, pad, out_pad=0):
        w = (self.rng.standard_normal((cin, cout, k, k)) * np.sqrt(1.0 / (cin * k * k))).astype(np.float32)
        b = self.const(self.rng.standard_normal(cout).astype(np.float32) * 0.05, "b")
        return self.node("ConvTranspose", [x, self.const(w, "w"), b], kernel_shape=[k, k],
                         strides=[stride, stride], pads=[pad] * 4, output_padding=[out_pad] * 2)

    def prelu(self, x, c):
        slope = (0.25 + 0.05 * self.rng.standard_normal((c, 1, 1))).astype(np.float32)
        return self.node("PRelu", [x, self.const(slope, "slope")])

    def batchnorm(self, x, c):
        r = self.rng
        params = [1 + 0.1 * r.standard_normal(c), 0.1 * r.standard_normal(c),
                  0.1 * r.standard_normal(c), 1 + 0.2 * r.random(c)]
        return self.node("BatchNormalization", [x] + [self.const(p.astype(np.float32), "bn") for p in params],
                         epsilon=1e-5)

    def pixel_shuffle(self, x, r):
        return self.node("DepthToSpace", [x], blocksize=r, mode="CRD")

    def subgraph(self, build, name) -> onnx.GraphProto:
        """An If branch: runs build() (which adds nodes and returns its float output's name) into
        fresh node and initializer lists. Branches take no inputs and read outer names directly;
        node names stay unique across the branches because the counter is shared."""
        outer = self.nodes, self.inits
        self.nodes, self.inits = [], []
        try:
            out = helper.make_tensor_value_info(build(), TensorProto.FLOAT, None)
            return helper.make_graph(self.nodes, name, [], [out], self.inits)
        finally:
            self.nodes, self.inits = outer

    def model(self, inputs, outputs, name) -> onnx.ModelProto:
        """inputs: ValueInfoProtos or (name, shape) pairs, float32."""
        ins = [i if isinstance(i, onnx.ValueInfoProto) else helper.make_tensor_value_info(i[0], TensorProto.FLOAT, i[1])
               for i in inputs]
        outs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs]
        g = helper.make_graph(self.nodes, name, ins, outs, self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="dydca.zoo")
        m.ir_version = 9
        return m


IMAGE = ["n", 3, "h", "w"]


def espcn(scale=3, seed=0, features=(64, 32)) -> onnx.ModelProto:
    """ESPCN (Shi et al. 2016): 5x5 and 3x3 convs with tanh, sub-pixel convolution."""
    net = Net(seed)
    a, b = features
    x = net.node("Tanh", [net.conv("x", 3, a, 5)])
    x = net.node("Tanh", [net.conv(x, a, b, 3)])
    y = net.pixel_shuffle(net.conv(x, b, 3 * scale * scale, 3), scale)
    return net.model([("x", IMAGE)], [y], "espcn")


def fsrcnn(scale=2, d=32, s=12, m=4, seed=0) -> onnx.ModelProto:
    """FSRCNN (Dong et al. 2016): feature extraction, shrinking, mapping, expanding with PReLU,
    then a 9x9 transposed conv for the upscale."""
    net = Net(seed)
    x = net.prelu(net.conv("x", 3, d, 5), d)
    x = net.prelu(net.conv(x, d, s, 1), s)
    for _ in range(m):
        x = net.prelu(net.conv(x, s, s, 3), s)
    x = net.prelu(net.conv(x, s, d, 1), d)
    y = net.conv_transpose(x, d, 3, 9, scale, 4, scale - 1)
    return net.model([("x", IMAGE)], [y], "fsrcnn")


def edsr(scale=2, nf=32, blocks=4, res_scale=0.1, seed=0) -> onnx.ModelProto:
    """EDSR (Lim et al. 2017): residual blocks without BN, scaled residuals, global skip."""
    net = Net(seed)
    head = net.conv("x", 3, nf, 3)
    x = head
    for _ in range(blocks):
        r = net.conv(net.node("Relu", [net.conv(x, nf, nf, 3)]), nf, nf, 3)
        r = net.node("Mul", [r, net.const(np.float32(res_scale), "rs")])
        x = net.node("Add", [x, r])
    x = net.node("Add", [net.conv(x, nf, nf, 3), head])
    x = net.pixel_shuffle(net.conv(x, nf, nf * scale * scale, 3), scale)
    y = net.conv(x, nf, 3, 3)
    return net.model([("x", IMAGE)], [y], "edsr")


def wdsr(scale=2, nf=32, blocks=4, expand=4, seed=0) -> onnx.ModelProto:
    """WDSR-A (Yu et al. 2018): wide activation blocks (expand, ReLU, reduce), a 5x5 conv skip
    branch, both pixel-shuffled and added."""
    net = Net(seed)
    x = net.conv("x", 3, nf, 3)
    for _ in range(blocks):
        r = net.node("Relu", [net.conv(x, nf, nf * expand, 3)])
        x = net.node("Add", [x, net.conv(r, nf * expand, nf, 3)])
    body = net.pixel_shuffle(net.conv(x, nf, 3 * scale * scale, 3), scale)
    skip = net.pixel_shuffle(net.conv("x", 3, 3 * scale * scale, 5), scale)
    y = net.node("Add", [body, skip])
    return net.model([("x", IMAGE)], [y], "wdsr")


def srresnet(scale=2, nf=32, blocks=4, seed=0) -> onnx.ModelProto:
    """SRResNet (Ledig et al. 2017): 9x9 head with PReLU, residual blocks with BatchNorm and PReLU,
    sub-pixel upsampling with PReLU, 9x9 tail."""
    net = Net(seed)
    head = net.prelu(net.conv("x", 3, nf, 9), nf)
    x = head
    for _ in range(blocks):
        r = net.prelu(net.batchnorm(net.conv(x, nf, nf, 3), nf), nf)
        x = net.node("Add", [x, net.batchnorm(net.conv(r, nf, nf, 3), nf)])
    x = net.node("Add", [net.batchnorm(net.conv(x, nf, nf, 3), nf), head])
    steps = {2: [2], 3: [3], 4: [2, 2]}[scale]
    for r in steps:
        x = net.prelu(net.pixel_shuffle(net.conv(x, nf, nf * r * r, 3), r), nf)
    y = net.conv(x, nf, 3, 9)
    return net.model([("x", IMAGE)], [y], "srresnet")


def unet(nf=16, levels=2, seed=0) -> onnx.ModelProto:
    """A U-Net whose padding is computed from its input's own size: the input is padded up to a
    multiple of 2**levels (Shape -> Gather -> Mod -> Sub -> Concat -> Pad), encoded with strided
    convs, decoded with nearest Resize and Concat skips, and sliced back to the input's size."""
    net = Net(seed)
    mult = 2 ** levels
    shape = net.node("Shape", ["x"])
    hw = net.node("Gather", [shape, net.const(np.array([2, 3], np.int64), "idx")], axis=0)
    m = net.const(np.array([mult, mult], np.int64), "mult")
    pad_hw = net.node("Mod", [net.node("Sub", [m, net.node("Mod", [hw, m])]), m])
    zeros = net.const(np.zeros(6, np.int64), "z")
    pads = net.node("Concat", [zeros, pad_hw], axis=0)  # [0,0,0,0, 0,0,pad_h,pad_w]
    x = net.node("Pad", ["x", pads], mode="edge")
    skips, c = [], 3
    for level in range(levels):
        x = net.node("Relu", [net.conv(x, c, nf << level, 3)])
        skips.append(x)
        c = nf << level
        x = net.node("Relu", [net.conv(x, c, c, 3, stride=2)])
    x = net.node("Relu", [net.conv(x, c, c, 3)])
    for level in reversed(range(levels)):
        up = net.node("Resize", [x, "", net.const(np.array([1, 1, 2, 2], np.float32), "sc")], mode="nearest")
        x = net.node("Concat", [up, skips[level]], axis=1)
        cin = c + (nf << level)
        c = nf << level
        x = net.node("Relu", [net.conv(x, cin, c, 3)])
    y = net.conv(x, c, 3, 3)
    ends = net.node("Gather", [shape, net.const(np.array([2, 3], np.int64), "idx")], axis=0)
    y = net.node("Slice", [y, net.const(np.array([0, 0], np.int64), "st"), ends,
                           net.const(np.array([2, 3], np.int64), "ax")])
    return net.model([("x", IMAGE)], [y], "unet")


def _sr_path(net: Net, x: str, widths, scale: int) -> str:
    """One ESPCN-like path: 3x3 conv + ReLU per width, a 3x3 conv to 3*scale^2 channels and a
    pixel shuffle; maps (n,3,h,w) to (n,3,scale*h,scale*w) whatever its depth and widths."""
    c = 3
    for w in widths:
        x = net.node("Relu", [net.conv(x, c, w, 3)])
        c = w
    return net.pixel_shuffle(net.conv(x, c, 3 * scale * scale, 3), scale)


def _default_widths(paths: int) -> list[list[int]]:
    """Path k has k+1 hidden convs and starts wider the deeper it is, as Dy-DCA's paths grow with
    the content's difficulty: [16], [24, 16], [32, 24, 16], [32, 32, 24, 16], ..."""
    return [([32] * max(0, k - 2) + [32, 24, 16])[-(k + 1):] for k in range(paths)]


def _index_chain(net: Net, x: str, sel: str, widths, scale: int, k: int = 0) -> str:
    """If(sel == k, path k, If(sel == k+1, ...)); the last path takes every other index, so any
    int64 value picks a path."""
    if k == len(widths) - 1:
        return _sr_path(net, x, widths[k], scale)
    cond = net.node("Equal", [sel, net.const(np.array(k, np.int64), "k")])
    then = net.subgraph(lambda: _sr_path(net, x, widths[k], scale), f"path{k}")
    rest = net.subgraph(lambda: _index_chain(net, x, sel, widths, scale, k + 1), f"paths{k + 1}_up")
    return net.node("If", [cond], then_branch=then, else_branch=rest)


def multipath(paths=4, select="index", scale=2, widths=None, seed=0) -> onnx.ModelProto:
    """A Dy-DCA network: N SR paths of different depth and width, one picked per call.

    Inputs: x (n,3,h,w) float32 and a path selector: select="bool" takes a bool scalar `c`
    (2 paths: c true -> path 0, false -> path 1); select="index" takes an int64 scalar `path` read
    through a chain of If (an index >= paths-1 or < 0 picks the last path). The one output is
    (n,3,scale*h,scale*w) float32 on every path. widths: per path, the hidden conv widths (default
    _default_widths)."""
    widths = [list(w) for w in (widths if widths is not None else _default_widths(paths))]
    if len(widths) != paths or paths < 2:
        raise ValueError(f"multipath: need paths >= 2 and one width list per path, got paths={paths}, "
                         f"{len(widths)} width lists")
    if select not in ("index", "bool"):
        raise ValueError(f"multipath: select must be 'index' or 'bool', not {select!r}")
    if select == "bool" and paths != 2:
        raise ValueError(f"multipath: select='bool' picks between 2 paths, not {paths}")
    net = Net(seed)
    if select == "bool":
        sel = helper.make_tensor_value_info("c", TensorProto.BOOL, [])
        y = net.node("If", ["c"], then_branch=net.subgraph(lambda: _sr_path(net, "x", widths[0], scale), "path0"),
                     else_branch=net.subgraph(lambda: _sr_path(net, "x", widths[1], scale), "path1"))
    else:
        sel = helper.make_tensor_value_info("path", TensorProto.INT64, [])
        y = _index_chain(net, "x", "path", widths, scale)
    return net.model([("x", IMAGE), sel], [y], f"multipath{paths}_{select}")


def resnet50(seed=0, classes=1000) -> onnx.ModelProto:
    """ResNet-50 (He et al. 2016), torchvision's topology (v1.5: the stride sits on the 3x3 conv of
    each bottleneck): 7x7/2 conv, 3x3/2 max pool, bottleneck stages [3, 4, 6, 3] of 1x1, 3x3, 1x1
    convs (widths 64..512, x4 out) with a strided 1x1 projection on each stage's first block, global
    average pool, Flatten, Gemm 2048 -> classes. Convs have no bias and are followed by
    BatchNormalization nodes, as torch exports them before folding."""
    net = Net(seed)

    def conv_bn(x, cin, cout, k, stride=1, relu=True):
        y = net.batchnorm(net.conv(x, cin, cout, k, stride=stride, bias=False), cout)
        return net.node("Relu", [y]) if relu else y

    x = conv_bn("x", 3, 64, 7, stride=2)
    x = net.node("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4)
    cin = 64
    for stage, (blocks, width) in enumerate(zip([3, 4, 6, 3], [64, 128, 256, 512])):
        for b in range(blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            y = conv_bn(x, cin, width, 1)
            y = conv_bn(y, width, width, 3, stride)
            y = conv_bn(y, width, width * 4, 1, relu=False)
            skip = conv_bn(x, cin, width * 4, 1, stride, relu=False) if b == 0 else x
            x = net.node("Relu", [net.node("Add", [y, skip])])
            cin = width * 4
    x = net.node("Flatten", [net.node("GlobalAveragePool", [x])], axis=1)
    w = (net.rng.standard_normal((classes, cin)) * np.sqrt(1.0 / cin)).astype(np.float32)
    b = (net.rng.standard_normal(classes) * 0.05).astype(np.float32)
    y = net.node("Gemm", [x, net.const(w, "w"), net.const(b, "b")], transB=1)
    return net.model([("x", IMAGE)], [y], "resnet50")


SR_MODELS = {"espcn": espcn, "fsrcnn": fsrcnn, "edsr": edsr, "wdsr": wdsr, "srresnet": srresnet}
