"""The only package that imports AutoGen. Everything else uses these names."""
