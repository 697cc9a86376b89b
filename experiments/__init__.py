"""Studies: each module is one experiment with its runner, plots and nmllm subcommand; nothing imports them but the CLI."""
