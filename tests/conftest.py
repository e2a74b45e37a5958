# kerasdl before anything imports TensorFlow, as in users' programs: the suite then
# runs with the defaults `import kerasdl` sets (TensorFlow's oneDNN CPU kernels on).
import kerasdl  # noqa: F401
