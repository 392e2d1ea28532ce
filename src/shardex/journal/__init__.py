"""Write-ahead journal, snapshots and recovery."""
