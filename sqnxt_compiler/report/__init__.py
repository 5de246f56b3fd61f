"""What a compile hands over: the network schedule, its JSON form, the terminal summary."""
