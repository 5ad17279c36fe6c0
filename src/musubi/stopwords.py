"""Stop words: English, Italian, and programming-language keywords.

The lists are deliberately small and plain: words that carry no meaning about *what* a
requirement or a piece of code is about. Accents are already folded when these are used
(``perché`` is written ``perche``).
"""

from __future__ import annotations

__all__ = ["CODE_STOP_WORDS", "ENGLISH_STOP_WORDS", "ITALIAN_STOP_WORDS", "STOP_WORDS"]


def _wordset(text: str) -> frozenset[str]:
    return frozenset(text.split())


ENGLISH_STOP_WORDS = _wordset(
    """
    a about above after again against all also am an and any are aren as at be because
    been before being below between both but by can cannot could did do does doing done
    down during each either else etc even ever every few for from further had has have
    having he her here hers herself him himself his how however i if in into is isn it its
    itself just least less let like may me might more most must my myself neither no nor
    not now of off on once only onto or other otherwise our ours ourselves out over own
    per same shall she should since so some such than that the their theirs them
    themselves then there these they this those through thus to too toward towards under
    until up upon us very via was we were what when where whether which while who whom
    whose why will with within without would yet you your yours yourself yourselves
    """
)

ITALIAN_STOP_WORDS = _wordset(
    """
    a ad agli ai al alla alle allo altri altro anche ancora avere aveva avevano ben che
    chi ci cio coi col come con contro cosi cui da dagli dai dal dall dalla dalle dallo
    degli dei del dell della delle dello dentro deve devono di dove dunque e ed egli ella
    essa esse essere essi esso fa fino fra gia gli ha hai hanno ho i il in infatti inoltre
    io l la le lei li lo loro lui ma me mentre mi mia mie miei mio ne negli nei nel nell
    nella nelle nello noi non nostra nostre nostri nostro o ogni oppure ora per perche piu
    po poi pero quale quali quando quanto quella quelle quelli quello questa queste questi
    questo qui se sei senza si sia siamo siano sono sta stato stata stati stesso su sua
    sue sui sul sull sulla sulle sullo suo suoi ti tra tu tua tue tuo tuoi tutta tutte
    tutti tutto un una uno vi voi viene vengono
    """
)

CODE_STOP_WORDS = _wordset(
    """
    abstract assert async await bool boolean break byte case catch char class const
    continue def default del do double elif elseif enum except extends false final finally
    float func function import implements instanceof int interface lambda long native new
    nil none null package pass private protected public raise return self short static str
    string struct super switch synchronized this throw throws transient true try typeof
    undefined var void volatile java javax util lang io sql http https www org com it
    """
)

STOP_WORDS = ENGLISH_STOP_WORDS | ITALIAN_STOP_WORDS | CODE_STOP_WORDS
