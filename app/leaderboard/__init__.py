"""The home page's leaderboard: configurations ranked over their seeds, single runs, the queue card."""
