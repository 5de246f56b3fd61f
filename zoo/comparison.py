"""The comparison networks the SqueezeNext paper measures on the same accelerator.

Each function is a network definition for :func:`~.builder.run_definition`: it takes a
:class:`~.builder.GraphBuilder` and returns the logits (no Softmax).  Dropout layers are
left out (inference graphs).  Pooling follows each network's reference framework: Caffe
networks (AlexNet, SqueezeNet) round pooled sizes up (ceil mode); for the sizes used here
ceil and floor agree except where noted.
"""
from __future__ import annotations

from .builder import GraphBuilder, Value


def alexnet(b: GraphBuilder) -> Value:
    """AlexNet as in Krizhevsky et al. (2012): the original two-group version, 227x227 input.

    conv1 11x11/4 96 -> LRN -> maxpool 3/2; conv2 5x5 256 group 2 -> LRN -> maxpool;
    conv3 3x3 384; conv4 3x3 384 group 2; conv5 3x3 256 group 2 -> maxpool;
    fc6 9216 -> 4096, fc7 4096 -> 4096, fc8 4096 -> 1000.  All layers have biases and
    ReLU (except fc8: logits).  LRN uses the paper's k=2, n=5, alpha=1e-4, beta=0.75; the
    paper does not divide alpha by n, ONNX does, so the node carries alpha = 5e-4.
    60,965,224 parameters, 724.4M MACs (725.1M counting one bias MAC per output).
    """
    x = b.input()
    x = b.conv(x, "conv1", 96, 11, 4, pads=(0, 0, 0, 0), bias=True, bn=False)
    x = b.lrn(x, "norm1", size=5, alpha=5e-4, beta=0.75, bias=2.0)
    x = b.max_pool(x, "pool1", 3, 2)
    x = b.conv(x, "conv2", 256, 5, group=2, bias=True, bn=False)
    x = b.lrn(x, "norm2", size=5, alpha=5e-4, beta=0.75, bias=2.0)
    x = b.max_pool(x, "pool2", 3, 2)
    x = b.conv(x, "conv3", 384, 3, bias=True, bn=False)
    x = b.conv(x, "conv4", 384, 3, group=2, bias=True, bn=False)
    x = b.conv(x, "conv5", 256, 3, group=2, bias=True, bn=False)
    x = b.max_pool(x, "pool5", 3, 2)
    x = b.flatten(x, "flatten")
    x = b.fc(x, "fc6", 4096, act="relu")
    x = b.fc(x, "fc7", 4096, act="relu")
    return b.fc(x, "fc8", 1000)


def _fire(b: GraphBuilder, x: Value, name: str, squeeze: int, expand: int) -> Value:
    """SqueezeNet's Fire module: squeeze 1x1 -> (expand 1x1 | expand 3x3) -> concat, ReLUs."""
    s = b.conv(x, f"{name}/squeeze1x1", squeeze, 1, bias=True, bn=False)
    e1 = b.conv(s, f"{name}/expand1x1", expand, 1, bias=True, bn=False)
    e3 = b.conv(s, f"{name}/expand3x3", expand, 3, bias=True, bn=False)
    return b.concat([e1, e3], f"{name}/concat")


def _squeezenet_head(b: GraphBuilder, x: Value) -> Value:
    """conv10 (1x1 -> 1000, ReLU) -> global average pool -> flatten: the class scores."""
    x = b.conv(x, "conv10", 1000, 1, bias=True, bn=False)
    x = b.global_avg_pool(x, "pool10")
    return b.flatten(x, "flatten")


def squeezenet_v10(b: GraphBuilder) -> Value:
    """SqueezeNet v1.0 (Iandola et al., 2016; DeepScale's Caffe definition), 227x227.

    conv1 7x7/2 96 -> maxpool 3/2 -> fire2-4 -> maxpool -> fire5-8 -> maxpool -> fire9
    -> conv10 -> global average pool.  Fire (squeeze, expand): (16, 64) x2, (32, 128) x2,
    (48, 192) x2, (64, 256) x2.  As in the reference, the class scores come out of ReLU
    and average pooling (no Softmax).  1,248,424 parameters.
    """
    x = b.input()
    x = b.conv(x, "conv1", 96, 7, 2, pads=(0, 0, 0, 0), bias=True, bn=False)
    x = b.max_pool(x, "pool1", 3, 2)
    x = _fire(b, x, "fire2", 16, 64)
    x = _fire(b, x, "fire3", 16, 64)
    x = _fire(b, x, "fire4", 32, 128)
    x = b.max_pool(x, "pool4", 3, 2)
    x = _fire(b, x, "fire5", 32, 128)
    x = _fire(b, x, "fire6", 48, 192)
    x = _fire(b, x, "fire7", 48, 192)
    x = _fire(b, x, "fire8", 64, 256)
    x = b.max_pool(x, "pool8", 3, 2)
    x = _fire(b, x, "fire9", 64, 256)
    return _squeezenet_head(b, x)


# v1.0 and v1.1 read alike line by line (the `duplicates` tool pairs them): they are two
# published definitions that differ in conv1 and where the pools sit, kept literal so each
# can be checked against its reference.
def squeezenet_v11(b: GraphBuilder) -> Value:
    """SqueezeNet v1.1 (DeepScale's Caffe definition); the preset builds it at 224x224
    (the paper's 352M MACs is the 224 figure; see presets.py).

    conv1 3x3/2 64 -> maxpool -> fire2-3 -> maxpool -> fire4-5 -> maxpool -> fire6-9
    -> conv10 -> global average pool.  Same Fire sizes as v1.0, pooling moved earlier.
    1,235,496 parameters.
    """
    x = b.input()
    x = b.conv(x, "conv1", 64, 3, 2, pads=(0, 0, 0, 0), bias=True, bn=False)
    x = b.max_pool(x, "pool1", 3, 2)
    x = _fire(b, x, "fire2", 16, 64)
    x = _fire(b, x, "fire3", 16, 64)
    x = b.max_pool(x, "pool3", 3, 2)
    x = _fire(b, x, "fire4", 32, 128)
    x = _fire(b, x, "fire5", 32, 128)
    x = b.max_pool(x, "pool5", 3, 2)
    x = _fire(b, x, "fire6", 48, 192)
    x = _fire(b, x, "fire7", 48, 192)
    x = _fire(b, x, "fire8", 64, 256)
    x = _fire(b, x, "fire9", 64, 256)
    return _squeezenet_head(b, x)


def tiny_darknet(b: GraphBuilder) -> Value:
    """Tiny Darknet (Redmon, darknet ``tiny.cfg``), 224x224.

    3x3 and 1x1 convolutions with BatchNorm and leaky ReLU (slope 0.1), 2x2/2 max pools;
    the last 1x1 conv (-> 1000) is linear with a bias and no BatchNorm, followed by a
    global average pool (no Softmax).
    """
    plan = [(16, 3), "M", (32, 3), "M", (16, 1), (128, 3), (16, 1), (128, 3), "M",
            (32, 1), (256, 3), (32, 1), (256, 3), "M",
            (64, 1), (512, 3), (64, 1), (512, 3), (128, 1)]
    x = b.input()
    conv_i = pool_i = 0
    for item in plan:
        if item == "M":
            pool_i += 1
            x = b.max_pool(x, f"pool{pool_i}", 2, 2, ceil_mode=False)
        else:
            conv_i += 1
            cout, k = item
            x = b.conv(x, f"conv{conv_i}", cout, k, act="leaky")
    x = b.conv(x, f"conv{conv_i + 1}", 1000, 1, bias=True, bn=False, act=None)
    x = b.global_avg_pool(x, "pool_avg")
    return b.flatten(x, "flatten")


def mobilenet_v1(b: GraphBuilder) -> Value:
    """MobileNet v1, width 1.0, 224x224 (Howard et al., 2017, Table 1).

    conv1 3x3/2 32, then 13 depthwise-separable blocks (3x3 depthwise with group ==
    channels, then 1x1 pointwise), each conv with BatchNorm and ReLU; global average pool,
    fc 1024 -> 1000 with bias.  4,231,976 parameters (BatchNorm scale and shift included).
    """
    plan = [(64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2),
            (512, 1), (512, 1), (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1)]
    x = b.input()
    x = b.conv(x, "conv1", 32, 3, 2)
    for i, (cout, stride) in enumerate(plan, start=1):
        c = x.shape[0]
        x = b.conv(x, f"block{i}/dw", c, 3, stride, group=c)
        x = b.conv(x, f"block{i}/pw", cout, 1)
    x = b.global_avg_pool(x, "pool_avg")
    x = b.flatten(x, "flatten")
    return b.fc(x, "fc", 1000)


def vgg19(b: GraphBuilder) -> Value:
    """VGG-19 (Simonyan and Zisserman, 2015, configuration E), 224x224.

    Sixteen 3x3 convolutions (pad 1, bias, ReLU) in five groups of 2, 2, 4, 4, 4 with
    64-128-256-512-512 channels, each group closed by a 2x2/2 max pool; fc6 25088 -> 4096,
    fc7 4096 -> 4096 (ReLU), fc8 4096 -> 1000.  143,667,240 parameters.
    """
    groups = [(64, 2), (128, 2), (256, 4), (512, 4), (512, 4)]
    x = b.input()
    for g, (cout, n) in enumerate(groups, start=1):
        for i in range(1, n + 1):
            x = b.conv(x, f"conv{g}_{i}", cout, 3, bias=True, bn=False)
        x = b.max_pool(x, f"pool{g}", 2, 2, ceil_mode=False)
    x = b.flatten(x, "flatten")
    x = b.fc(x, "fc6", 4096, act="relu")
    x = b.fc(x, "fc7", 4096, act="relu")
    return b.fc(x, "fc8", 1000)
