"""Lower bounds for one-pass machines: prefix-class counts (closed form and brute force), Fano
ceilings, the AR-oracle bound, fooling inputs and real architectures' state sizes."""
