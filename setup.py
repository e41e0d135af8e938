"""The one compiled part: keccak256 and Merkle trees for the oracle (see _keccak.c).

``optional=True``: without a C compiler the package still installs, and
``apicredits.oracle.merkle`` runs its pure-Python path (about four times slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "apicredits.oracle._keccak",
            ["src/apicredits/oracle/_keccak.c"],
            extra_compile_args=["-O3"],
            optional=True,
        )
    ]
)
