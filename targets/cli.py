"""``sqnxtc targets``: list and show target descriptions."""
import click


@click.group()
def targets_group() -> None:
    """Target descriptions (accelerator configurations)."""
