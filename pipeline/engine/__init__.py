"""The build engine on Ray Data: work units, the stage plan, staging, finalisation, Ray set-up."""
