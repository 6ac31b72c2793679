"""Small pieces every side of the kiosk shares (time, retry pacing); imports nothing of the project."""
