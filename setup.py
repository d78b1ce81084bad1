"""Build the optional C scanner; everything else about the package is in pyproject.toml.

`optional=True`: where no C compiler is available the install still succeeds, and
`style.parse.whatsapp` runs its pure-Python loop instead.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "style.parse._scan",
            ["style/parse/_scan.c"],
            extra_compile_args=["-O2", "-Wall"],
            optional=True,
        )
    ]
)
