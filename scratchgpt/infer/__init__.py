"""Inference: the KV-cache generation engine every caller shares (CLI, evaluation, server).

See ENGINE notes in engine.py; the linear protocol in linear.py; weights in weights.py.
"""
from .engine import Engine, EngineStats, end_token_ids
from .load import load_for_inference
from .params import (Completion, ContextLengthError, EngineFull, GenerationRequest, SamplingParams,
                     StepOutput)
from .weights import DecoderWeights, decoder_weights

__all__ = ["Engine", "EngineStats", "SamplingParams", "GenerationRequest", "StepOutput", "Completion",
           "load_for_inference", "EngineFull", "ContextLengthError", "DecoderWeights", "decoder_weights",
           "end_token_ids"]
