"""Analysis of MD trajectories: readers, structure (g(r), S(q)), and the commands built on them."""
