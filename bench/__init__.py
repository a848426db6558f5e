"""The benchmark against the seed design, one module per concern (bench/README.md, "Layout")."""
