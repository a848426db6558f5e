"""Operations around the runs: the failure alert hook and what the Prefect dashboard shows."""
