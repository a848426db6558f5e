"""Integration tests of issue 3 against Azurite: model store, daily flow, publishing, Power BI reading."""
