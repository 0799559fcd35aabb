"""The paper's networks and what trains them: config, layers, E, G, D, the warp, VGG, losses, the model, precision."""
