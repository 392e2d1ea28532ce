"""Market-data feeds: venue readers, L2 book builders with gap detection, live handlers."""
