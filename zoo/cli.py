"""``sqnxtc zoo``: list and export the model zoo."""
import click


@click.group()
def zoo_group() -> None:
    """The model zoo: SqueezeNext family and comparison networks as ONNX."""
