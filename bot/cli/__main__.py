"""`python -m bot.cli`: the `wa-persona` command, for launchers that run modules.

Multi-GPU training runs the same command under accelerate:
`accelerate launch --config_file training/configs/accelerate/fsdp.yaml -m bot.cli train ...`.
"""

from bot.cli import main

if __name__ == "__main__":
    main()
