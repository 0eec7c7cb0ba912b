"""The one exception the feature pipeline raises for a user-facing problem."""


class FeatureStoreError(ValueError):
    """Invalid feature data, definitions or request.

    The message names the object (feature view, file, column or value) and says what
    to do next, so the CLI prints it as one line without a traceback.
    """
