"""The music lab: the recipe that builds the embedded catalog and the study that checks the mood map on people."""
