"""The mechanism under the name registries of schedules and augmentations.

A `Registry` keeps entries (frozen dataclasses with a `name`) in the order
they were registered and refuses duplicates and unknown names in the
Keras wording, naming the argument the user passed.
"""

from callbacks._internal import check_choice


class Registry:
    """Entries by name, in registration order.

    Args:
        kind: What the entries are, for messages (e.g. `"schedule"`).
    """

    def __init__(self, kind):
        self.kind = kind
        self.entries = {}

    def add(self, info):
        """Register `info` under `info.name`; returns it.

        Raises:
            ValueError: If the name is already registered.
        """
        if info.name in self.entries:
            raise ValueError(
                f"Argument `name` must be a new {self.kind} name. Received: "
                f"name={info.name!r} (already registered)"
            )
        self.entries[info.name] = info
        return info

    def remove(self, name):
        """Unregister `name` (an entry added for a while, e.g. in a test)."""
        del self.entries[name]

    def names(self):
        """The registered names, in registration order."""
        return list(self.entries)

    def get(self, argument, name):
        """The entry registered under `name`.

        Args:
            argument: The name of the user's argument, for the message.
            name: The name to look up.

        Raises:
            ValueError: If `name` is not registered.
        """
        check_choice(argument, name, tuple(self.entries))
        return self.entries[name]
