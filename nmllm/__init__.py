"""The nmllm command line: the subcommand registry, the demo, and the commands that front the library."""
