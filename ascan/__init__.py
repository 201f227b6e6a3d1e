"""AsCAN: asymmetric convolution-attention networks (classifier and text-to-image UNet).

    import ascan
    ascan.list_models()                      # every registered variant
    model = ascan.create_model("ascan_t")    # ImageNet classifier
    unet = ascan.create_model("ascan_unet_tiny", in_channels=4)
"""

from ascan import classifier, unet  # noqa: F401  (importing registers the variants)
from ascan.blocks import BlockCfg, CBlock, Stage, TBlock
from ascan.classifier import AsCANClassifier, ClassifierCfg
from ascan.profile import count_macs, count_params
from ascan.registry import create_model, get_config, list_models, register_model
from ascan.unet import AsCANUNet, UNetCfg, load_classifier_weights

__all__ = [
    "AsCANClassifier", "AsCANUNet", "BlockCfg", "CBlock", "ClassifierCfg", "Stage", "TBlock", "UNetCfg",
    "count_macs", "count_params", "create_model", "get_config", "list_models", "load_classifier_weights",
    "register_model",
]
