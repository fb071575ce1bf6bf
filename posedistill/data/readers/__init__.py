"""posedistill.data.readers"""
