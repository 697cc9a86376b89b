"""Quality measures: perplexity on raw text, ROUGE on summarisation pairs."""
