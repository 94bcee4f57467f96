"""The text model's forward pass, the one place it is written: the recipe trains this module and exports it to
ONNX; the encoder runs that export (``models/text/text_model.onnx``) with onnxruntime, without torch.

token ids → all-MiniLM-L6-v2 (our LoRA adapter merged in) → mean over the real tokens → L2 norm → a shared MLP
that gives 7 emotion logits (EMOTIONS order) and 2 raw valence/arousal values (EmoBank z-scores; the encoder
maps them onto the emotion table's range with the calibration stored beside the export). With ``va_hidden`` the
valence/arousal values come from a branch of their own (a second MLP over the same pooled vector).

The export starts after the word-embedding lookup (:class:`FromWordEmbeddings`): the adapter leaves that table as
the pip package ships it, so the encoder looks the token ids up in the package's own file and the ONNX file is
half the size.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from multimodal.labels import EMOTIONS

HERE = Path(__file__).resolve().parent
ADAPTER_DIR = HERE / "adapter"
HEAD_PATH = HERE / "head.safetensors"
N_OUT = len(EMOTIONS) + 2  # emotion logits, then valence and arousal


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)


class TextEmotionNet(nn.Module):
    """Encoder + pooling + head; ``forward(input_ids, attention_mask)`` → (logits (N, 7), valence/arousal (N, 2))."""

    def __init__(self, encoder: nn.Module, hidden: int = 256, dropout: float = 0.1, va_hidden: int = 0) -> None:
        super().__init__()
        self.encoder = encoder
        width = encoder.config.hidden_size
        self.head = mlp(width, hidden, len(EMOTIONS) if va_hidden else N_OUT, dropout)
        self.va_head = mlp(width, va_hidden, 2, dropout) if va_hidden else None

    def forward(self, input_ids: torch.Tensor | None, attention_mask: torch.Tensor,
                inputs_embeds: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask,
                              inputs_embeds=inputs_embeds).last_hidden_state
        pooled = F.normalize(mean_pool(hidden, attention_mask), dim=-1)
        out = self.head(pooled)
        if self.va_head is not None:
            return out, self.va_head(pooled)
        return out[:, :len(EMOTIONS)], out[:, len(EMOTIONS):]

    @classmethod
    def from_heads(cls, encoder: nn.Module, state: dict[str, torch.Tensor]) -> TextEmotionNet:
        """The network over ``encoder`` with the head(s) of :meth:`heads_state_dict` (a V/A branch if it has one)."""
        va = {k.removeprefix("va."): v for k, v in state.items() if k.startswith("va.")}
        net = cls(encoder, hidden=state["1.weight"].shape[0], va_hidden=va["1.weight"].shape[0] if va else 0)
        net.head.load_state_dict({k: v for k, v in state.items() if not k.startswith("va.")})
        if net.va_head is not None:
            net.va_head.load_state_dict(va)
        return net

    def heads_state_dict(self) -> dict[str, torch.Tensor]:
        """The trained head(s) as one flat dict: the emotion head's keys as they are, the V/A branch's under ``va.``."""
        state = dict(self.head.state_dict())
        if self.va_head is not None:
            state.update({f"va.{k}": v for k, v in self.va_head.state_dict().items()})
        return {k: v.contiguous() for k, v in state.items()}


class FromWordEmbeddings(nn.Module):
    """The network from looked-up word embeddings (N, T, width) on: what the recipe exports to ONNX."""

    def __init__(self, net: TextEmotionNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, inputs_embeds: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(None, attention_mask, inputs_embeds=inputs_embeds)


def mlp(width: int, hidden: int, out: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.LayerNorm(width), nn.Linear(width, hidden), nn.GELU(), nn.Dropout(dropout),
                         nn.Linear(hidden, out))


def base_encoder() -> nn.Module:
    """all-MiniLM-L6-v2 from the pip package (hash-checked)."""
    from transformers import AutoModel

    from multimodal.backbones import minilm_dir

    return AutoModel.from_pretrained(minilm_dir())


def with_lora(encoder: nn.Module, rank: int = 16) -> nn.Module:
    """The encoder wrapped with a fresh LoRA adapter on every attention and feed-forward projection."""
    from peft import LoraConfig, get_peft_model

    return get_peft_model(encoder, LoraConfig(r=rank, lora_alpha=2 * rank, lora_dropout=0.1,
                                              target_modules=["query", "key", "value", "dense"]))


def load_trained(adapter_dir: Path = ADAPTER_DIR, head_path: Path = HEAD_PATH) -> TextEmotionNet:
    """The shipped torch model: base encoder + our adapter (merged) + head, in eval mode."""
    from peft import PeftModel
    from safetensors.torch import load_file

    encoder = PeftModel.from_pretrained(base_encoder(), str(adapter_dir)).merge_and_unload()
    return TextEmotionNet.from_heads(encoder, load_file(str(head_path))).eval()
