"""What a user reads: eval and predict, error analysis, the leaderboard's markdown and plots."""
