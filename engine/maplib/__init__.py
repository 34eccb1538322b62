"""Building blocks shared by mapping plugins: pure functions over the codecs' parsed types,
so that every feed maps the same patient, visit and identifier the same way."""
