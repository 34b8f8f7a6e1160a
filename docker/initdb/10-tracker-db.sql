-- A database of its own for the shared transfer tracker (rahcp_prefect.tracker.PostgresTracker).
CREATE DATABASE rahcp_tracker OWNER prefect;
