"""Code the daemon does not run: the synthetic cel-animation generator (the demo, tests and
benchmarks), the refine network's training data, training and evaluation, and the quality
metrics the tests and benchmarks share. Nothing under ``quickart_daemon`` outside this
package imports it, except `quickart demo`, which draws its shot with the generator.
"""
