"""Materials-science workflows (jobflow flows of atomate2 makers) that the oracles launch."""
