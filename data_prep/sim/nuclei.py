"""Nuclei by name: attpc-engine's AME 2020 mass table and isotope parsing.

A leaf module (imports nothing else of `data_prep.sim`), so that `config` and `physics`
both import it at top level without an import cycle.
"""

from __future__ import annotations

import functools
import re

from data_prep.errors import InputError

_ISOTOPE = re.compile(r"^\s*(\d+)\s*([A-Za-z]{1,2})\s*$|^\s*([A-Za-z]{1,2})\s*-?\s*(\d+)\s*$")


@functools.cache
def nuclear_map():
    """attpc-engine's AME 2020 mass table (one shared instance, imported on first use)."""
    from attpc_engine import nuclear_map as table

    return table


@functools.cache
def symbol_to_z() -> dict[str, int]:
    """Element symbol ("Ar") -> proton number, from the mass table."""
    return {data.element_symbol: data.Z for data in nuclear_map().map.values() if data.Z > 0}


def parse_isotope(text: str, what: str = "nucleus") -> tuple[int, int]:
    """``"46Ar"`` (or ``"Ar46"``, ``"ar-46"``) -> ``(Z, A)``, checked against the AME table.

    Raises
    ------
    InputError
        Unparsable text or a nucleus the mass table does not know.
    """
    match = _ISOTOPE.match(str(text))
    if not match:
        raise InputError(f"{what}: cannot read isotope {text!r} (write it like '46Ar')")
    a_text, symbol = (match[1], match[2]) if match[1] else (match[4], match[3])
    z = symbol_to_z().get(symbol.capitalize())
    if z is None:
        raise InputError(f"{what}: unknown element {symbol!r} in {text!r}")
    a = int(a_text)
    try:
        nuclear_map().get_data(z, a)
    except KeyError:
        raise InputError(f"{what}: unknown nucleus {text!r} (not in the AME 2020 table)") from None
    return z, a
