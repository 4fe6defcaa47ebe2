"""The CLI's commands, one class each; ``petguard.cli.main.COMMANDS`` names them."""
