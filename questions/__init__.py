"""The assignment's written questions measured: the Hessian's spectrum (Question 4a), GOE
matrices and saddles (4b, 4c), and BatchNorm tested with batch statistics (5c)."""
