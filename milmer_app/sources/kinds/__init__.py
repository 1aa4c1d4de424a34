"""The built-in source kinds, one module each; `milmer_app.sources` imports every module in this folder once.

A kind module registers its kind(s) with `milmer_app.sources.registry.register`: the typed options,
the spec grammar, the builder, the preflight check and the GUI page hook side by side. It stays
light (parsing a spec must not load a device library): the source class it builds is imported
inside its builder. See "Adding a source kind" in docs/architecture.md.
"""
