"""LLM providers behind one streaming interface; never imports web code."""
