"""(filled in by the operator families work)"""
