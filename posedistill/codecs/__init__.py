"""posedistill.codecs"""
