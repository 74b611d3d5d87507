"""A randomly initialised, tiny Stable Diffusion XL pipeline built offline from configs.

Same component classes and wiring as a real SDXL checkpoint (UNet with `text_time` conditioning,
AutoencoderKL, CLIPTextModel + CLIPTextModelWithProjection, CLIP BPE tokenizers), sized so a
64x64 image takes a fraction of a second on the CPU. The tokenizer's vocabulary is written here:
nothing is downloaded. `save_tiny_sdxl` writes the base (and optionally a refiner that shares its
second text encoder and VAE, as the real refiner does) with `save_pretrained`, so the backend loads
them exactly as it loads a real model directory.
"""

from __future__ import annotations

import json
import string
from pathlib import Path

HIDDEN = 32          # each text encoder's hidden size
TIME_EMBED = 8       # UNet addition_time_embed_dim
PROJECTION = 32      # text_encoder_2 projection_dim (the pooled embedding)


def write_tokenizer(folder: Path) -> Path:
    """A CLIP BPE tokenizer over lowercase letters, digits and punctuation, with no merges."""
    folder.mkdir(parents=True, exist_ok=True)
    symbols = sorted(set(string.ascii_lowercase + string.digits + string.punctuation))
    vocab: dict[str, int] = {}
    for symbol in symbols:
        vocab.setdefault(symbol, len(vocab))
        vocab.setdefault(symbol + "</w>", len(vocab))
    for special in ("<|startoftext|>", "<|endoftext|>"):
        vocab[special] = len(vocab)
    (folder / "vocab.json").write_text(json.dumps(vocab))
    (folder / "merges.txt").write_text("#version: 0.2\n")
    return folder


def _text_config(vocab_size: int, *, with_projection: bool):
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        bos_token_id=vocab_size - 2, eos_token_id=vocab_size - 1, pad_token_id=vocab_size - 1,
        hidden_size=HIDDEN, intermediate_size=37, layer_norm_eps=1e-05, num_attention_heads=4,
        num_hidden_layers=2, vocab_size=vocab_size, hidden_act="gelu", max_position_embeddings=77,
        projection_dim=PROJECTION if with_projection else HIDDEN,
    )


def _unet(*, cross_attention_dim: int, time_ids: int):
    from diffusers import UNet2DConditionModel

    return UNet2DConditionModel(
        block_out_channels=(32, 64), layers_per_block=1, sample_size=32, in_channels=4, out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        attention_head_dim=(2, 4), use_linear_projection=True, addition_embed_type="text_time",
        addition_time_embed_dim=TIME_EMBED, transformer_layers_per_block=(1, 1),
        projection_class_embeddings_input_dim=time_ids * TIME_EMBED + PROJECTION,
        cross_attention_dim=cross_attention_dim, norm_num_groups=8,
    )


def build_tiny_components(seed: int = 0) -> dict:
    """Base components: the same names `StableDiffusionXLPipeline.__init__` takes."""
    import tempfile

    import torch
    from diffusers import AutoencoderKL, EulerDiscreteScheduler
    from transformers import CLIPTextModel, CLIPTextModelWithProjection, CLIPTokenizer

    torch.manual_seed(seed)
    with tempfile.TemporaryDirectory() as scratch:
        tokenizer = CLIPTokenizer.from_pretrained(str(write_tokenizer(Path(scratch))), model_max_length=77)
    vocab_size = len(tokenizer)
    vae = AutoencoderKL(
        block_out_channels=(32, 64), in_channels=3, out_channels=3, latent_channels=4, sample_size=128,
        down_block_types=("DownEncoderBlock2D", "DownEncoderBlock2D"),
        up_block_types=("UpDecoderBlock2D", "UpDecoderBlock2D"), norm_num_groups=8,
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", timestep_spacing="leading",
        steps_offset=1,
    )
    return {
        "unet": _unet(cross_attention_dim=2 * HIDDEN, time_ids=6),
        "vae": vae,
        "scheduler": scheduler,
        "text_encoder": CLIPTextModel(_text_config(vocab_size, with_projection=False)),
        "tokenizer": tokenizer,
        "text_encoder_2": CLIPTextModelWithProjection(_text_config(vocab_size, with_projection=True)),
        "tokenizer_2": tokenizer,
    }


def save_tiny_sdxl(base_dir: Path, refiner_dir: Path | None = None, *, seed: int = 0) -> None:
    """Write a tiny base pipeline (and refiner) the way `save_pretrained` writes a real one."""
    import torch
    from diffusers import StableDiffusionXLImg2ImgPipeline, StableDiffusionXLPipeline

    components = build_tiny_components(seed)
    StableDiffusionXLPipeline(**components).save_pretrained(base_dir)
    if refiner_dir is None:
        return
    torch.manual_seed(seed + 1)
    refiner = StableDiffusionXLImg2ImgPipeline(
        unet=_unet(cross_attention_dim=HIDDEN, time_ids=5), vae=components["vae"],
        scheduler=components["scheduler"], text_encoder=None, tokenizer=None,
        text_encoder_2=components["text_encoder_2"], tokenizer_2=components["tokenizer_2"],
        requires_aesthetics_score=True, force_zeros_for_empty_prompt=False,
    )
    refiner.save_pretrained(refiner_dir)
