"""An example kdcore plugin: one method file, one architecture file."""
