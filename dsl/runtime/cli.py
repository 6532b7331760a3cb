"""The `svmdsl` command."""


def main() -> int:
    raise SystemExit("svmdsl: not built yet")
