"""The database: tables, engine and start-up upgrades, the run queue, and the errors its operations raise."""
