"""Feature families: one module per source, each declaring its features beside their SQL."""
