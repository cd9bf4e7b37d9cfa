"""v1's ``azureml.widgets``: :class:`RunDetails`, a live view of a run in a notebook or terminal.

Example::

    from trainyard.widgets import RunDetails
    RunDetails(run).show()
"""

from trainyard.widgets.run_details import RunDetails

__all__ = ["RunDetails"]
