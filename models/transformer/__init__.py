"""A pre-trained transformer (SmolLM2) converted to spikes: loading, spike coding, conversion, analysis."""
